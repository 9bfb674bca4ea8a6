"""Job plumbing every layer uses: config dataclasses from YAML and flags, atomic outputs, input errors, logging,
progress bars, the device a job runs on. It imports nothing of ours."""

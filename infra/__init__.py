"""Job plumbing every layer uses: config dataclasses from YAML and flags, atomic outputs, input errors, logging,
progress bars, the device a job runs on. It imports nothing of ours.

Importing it keeps the model hub offline (``HF_HUB_OFFLINE``): nothing is downloaded at run time, and transformers
does not spend half a minute retrying a hub it cannot reach. The modules that load transformers import it first."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

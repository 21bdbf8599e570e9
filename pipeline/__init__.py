"""Data plumbing shared by the extractors, the workflows and the model: manifests, errors, storage, views."""

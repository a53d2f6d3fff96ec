"""The node's model store: blobs, manifests, Modelfiles and the bundled models."""

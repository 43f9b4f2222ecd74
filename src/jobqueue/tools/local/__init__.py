"""Running the product on one machine: in-process draining, uploads, the local pipeline."""

"""Training: a policy learned from the training split (else the merged dataset), and its evaluation in the PushT simulation."""

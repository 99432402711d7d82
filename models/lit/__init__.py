"""LightningModules: the training loop of each network (issue 3)."""

"""Networks, their training (LightningModules and DataModules) and evaluation."""

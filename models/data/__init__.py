"""LightningDataModules: the data each network trains on (issue 3)."""

"""The `coherency` command line; every heavy import happens inside the command that needs it."""

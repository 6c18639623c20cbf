"""Load: the dataset snapshot, decoded images, the checkpoint and the config files."""

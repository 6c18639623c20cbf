"""Export the CropRun database's flagged corpus to a dataset snapshot the gate reads (issue 11)."""

"""Files: checkpoints (one file or shards) and the export formats (one file each in `formats/`)."""

"""What a person reads: the tables, the figures, the fly-through videos, the data report and docs/params.md."""

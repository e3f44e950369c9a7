"""Caption annotation files: one reader per format, one record type for all."""

"""hypertiny-keras."""

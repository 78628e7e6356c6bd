"""The `hypertiny` command (`main`) and its offline `quickstart`."""

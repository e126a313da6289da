"""Many-to-one sentiment classification (SST-2, SST-5, MR, any `label text` file)."""

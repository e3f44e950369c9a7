"""A prepared corpus on disk: ragged arrays of token ids, memory-mapped by every process.

``ragged`` holds the array format (one flat values file plus int64 offsets), ``folder`` the
life cycle of a store folder (keyed name, lock, temporary folder then rename, manifest).
The layout is documented in docs/data_store.md.
"""

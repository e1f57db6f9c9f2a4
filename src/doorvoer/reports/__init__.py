"""Reports (P4): counts, times and sizes of a tenant's transfers, drawn as charts; and
forgetting per-transfer records when a tenant or a process switched reporting off."""

"""The training floor: search, boosting on Ray Train or in a trial's own process, the whole job."""

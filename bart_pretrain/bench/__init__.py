"""`make bench`: speed figures as ratios against reference implementations measured in the same run."""

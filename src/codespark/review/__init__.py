"""Shadow-mode review: findings on the changed lines of a diff, from the model (checked by running the old
and the new code side by side), bandit, semgrep, the privacy guard and an import check."""

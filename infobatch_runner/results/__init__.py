"""A run's results and the comparison of runs.

Records (records.py: metrics.csv, summary.json; wandb_runs.py: W&B; tracking.py: both), the run
folders and who owns them (folders.py), and the report in its stages: read and validate runs
(runs.py), pair them with their baselines (pairing.py), statistics (stats.py), render (render.py),
write (report.py, plots.py), and the `infobatch-report` command (cli.py).

Layer: above errors.py only; nothing here knows how a run is trained.
"""

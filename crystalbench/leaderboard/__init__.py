"""Built-in leaderboard."""

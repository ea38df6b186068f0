"""`rollout dashboard`: a local web view of the fleet, its releases and their deployments."""

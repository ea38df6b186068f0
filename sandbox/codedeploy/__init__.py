"""CodeDeploy for the Lambda compute platform, as the local sandbox serves it.

`api` speaks the JSON 1.1 wire side (operation name and body in, dict out, AWS error codes);
`engine` keeps applications, groups, configs and deployments and runs each deployment in a thread;
`configs`, `appspec`, `models` and `validation` are pure and tested without a server.
"""

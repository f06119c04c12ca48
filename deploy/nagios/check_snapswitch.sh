#!/bin/bash
# The Python orchestrator's example status check, on snapswitch's status file
# (worker or `producer watch` with --status-file), which keeps the seed's
# fields. One change: the success rate is the last hour's
# (`success_rate_1h`), so one outage does not warn forever; a status file
# without it (older versions) falls back to the all-time `success_rate`.
STATUS_FILE="${1:-orchestrator_status.json}"

if [ ! -f "$STATUS_FILE" ]; then
    echo "CRITICAL: Status file not found"
    exit 2
fi

STATUS=$(cat "$STATUS_FILE" | jq -r '.status')
SUCCESS_RATE=$(cat "$STATUS_FILE" | jq -r '.success_rate_1h // .success_rate')
QUEUE_SIZE=$(cat "$STATUS_FILE" | jq -r '.queue_size')

if [ "$STATUS" != "running" ]; then
    echo "WARNING: Orchestrator status is $STATUS"
    exit 1
fi

if (( $(echo "$SUCCESS_RATE < 95" | bc -l) )); then
    echo "WARNING: Success rate over the last hour is ${SUCCESS_RATE}%"
    exit 1
fi

if [ "$QUEUE_SIZE" -gt 10 ]; then
    echo "WARNING: Queue size is $QUEUE_SIZE"
    exit 1
fi

echo "OK: Orchestrator healthy"
exit 0

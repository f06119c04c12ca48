#!/bin/bash
# The Python orchestrator's example status check, unchanged: snapswitch's
# status file (worker or `producer watch` with --status-file) keeps its fields.
STATUS_FILE="orchestrator_status.json"

if [ ! -f "$STATUS_FILE" ]; then
    echo "CRITICAL: Status file not found"
    exit 2
fi

STATUS=$(cat "$STATUS_FILE" | jq -r '.status')
SUCCESS_RATE=$(cat "$STATUS_FILE" | jq -r '.success_rate')
QUEUE_SIZE=$(cat "$STATUS_FILE" | jq -r '.queue_size')

if [ "$STATUS" != "running" ]; then
    echo "WARNING: Orchestrator status is $STATUS"
    exit 1
fi

if (( $(echo "$SUCCESS_RATE < 95" | bc -l) )); then
    echo "WARNING: Success rate is ${SUCCESS_RATE}%"
    exit 1
fi

if [ "$QUEUE_SIZE" -gt 10 ]; then
    echo "WARNING: Queue size is $QUEUE_SIZE"
    exit 1
fi

echo "OK: Orchestrator healthy"
exit 0

#!/bin/sh
# what Apache's kafka-server-start.sh runs
exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"

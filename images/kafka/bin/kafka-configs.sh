#!/bin/sh
# what Apache's kafka-configs.sh runs
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.ConfigCommand "$@"

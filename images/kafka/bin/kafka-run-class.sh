#!/bin/sh
# java with Kafka's jars and a console log4j2 configuration (the broker logs to the pod's stdout);
# KAFKA_HEAP_OPTS / KAFKA_OPTS as in Apache's script.
# shellcheck disable=SC2086 # the OPTS variables hold several options: split on purpose
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  "-Dlog4j2.configurationFile=${KAFKA_LOG4J_CONFIG:-/opt/kafka/config/log4j2.properties}" \
  ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*' "$@"

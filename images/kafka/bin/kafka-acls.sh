#!/bin/sh
# what Apache's kafka-acls.sh runs
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.AclCommand "$@"

#!/bin/sh
# what Apache's kafka-storage.sh runs
exec /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool "$@"

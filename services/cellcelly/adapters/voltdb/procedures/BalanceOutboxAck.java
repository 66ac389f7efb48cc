package cellcelly.voltdb;

/**
 * Deletes exactly the given outbox events (OutboxAckBase). Multi-partition (the events belong to
 * many subscribers); one call per relay batch.
 */
public class BalanceOutboxAck extends OutboxAckBase {
    public long run(long[] uids, long[] idxs) {
        return deleteEach(uids, idxs);
    }
}

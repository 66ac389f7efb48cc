package cellcelly.voltdb;

import org.voltdb.SQLStmt;
import org.voltdb.VoltProcedure;
import org.voltdb.VoltTable;

/**
 * One charging commit, atomically, in the subscriber's partition: the account header, the sessions
 * it changed or dropped, and its events for the outbox - or nothing, when the account is no longer
 * at the version the caller computed from (then it aborts with app status VERSION_CONFLICT and the
 * caller runs its pure function again on the new account).
 *
 * Every array starts with a placeholder element that is skipped: the Python client cannot send an
 * empty array (it writes no length for one), so a commit without sessions or events would be garbled.
 *
 * An existing account is written in one batch: the header's update carries the version check, and
 * when it changed no row the procedure aborts, which takes the batch's other writes back. A read
 * of the version first, then the writes, was two batches (two trips into the execution engine):
 * ~39 us a commit on the server (PROCEDUREPROFILE), for a check that almost always passes.
 */
public class BalanceCommit extends VoltProcedure {
    public static final byte VERSION_CONFLICT = 1;
    public static final byte BAD_REQUEST = 2;
    private static final int MAX_BATCH = 200; // VoltDB runs at most 200 queued statements at once

    public final SQLStmt version = new SQLStmt("SELECT version FROM account WHERE msisdn = ?;");
    public final SQLStmt upsertAccount = new SQLStmt(
        "UPSERT INTO account (msisdn, version, header) VALUES (?, ?, ?);");
    public final SQLStmt updateAccount = new SQLStmt(
        "UPDATE account SET version = ?, header = ? WHERE msisdn = ? AND version = ?;");
    public final SQLStmt upsertSession = new SQLStmt(
        "UPSERT INTO account_session (msisdn, session_id, body) VALUES (?, ?, ?);");
    public final SQLStmt deleteSession = new SQLStmt(
        "DELETE FROM account_session WHERE msisdn = ? AND session_id = ?;");
    public final SQLStmt insertEvent = new SQLStmt(
        "INSERT INTO outbox (msisdn, uid, idx, body) VALUES (?, ?, ?, ?);");

    private int queued;
    private VoltTable header0; // the answer to the header's write: how many rows it changed

    public long run(String msisdn, long expectedVersion, String header, String[] sessionIds,
                    String[] sessionBodies, String[] removedIds, String[] events) {
        if (sessionIds.length != sessionBodies.length) {
            setAppStatusCode(BAD_REQUEST);
            throw new VoltAbortException("session ids and bodies differ in length");
        }
        long next = expectedVersion + 1;
        queued = 0;
        header0 = null;
        if (expectedVersion == 0) {
            // a new account: nothing to update, so read that there is none yet
            long found = currentVersion(msisdn);
            if (found != 0) {
                conflict(msisdn, found, expectedVersion);
            }
            queue(upsertAccount, msisdn, next, header);
        } else {
            queue(updateAccount, next, header, msisdn, expectedVersion);
        }
        for (int i = 1; i < removedIds.length; i++) {
            queue(deleteSession, msisdn, removedIds[i]);
        }
        for (int i = 1; i < sessionIds.length; i++) {
            queue(upsertSession, msisdn, sessionIds[i], sessionBodies[i]);
        }
        // unique cluster-wide and increasing within this partition: the events' order key
        long uid = getUniqueId();
        for (int i = 1; i < events.length; i++) {
            queue(insertEvent, msisdn, uid, i - 1, events[i]);
        }
        execute(); // not the final batch: a failed check must still be able to abort it
        if (expectedVersion != 0 && header0.asScalarLong() == 0) {
            conflict(msisdn, currentVersion(msisdn), expectedVersion);
        }
        return next;
    }

    private long currentVersion(String msisdn) {
        voltQueueSQL(version, msisdn);
        VoltTable current = voltExecuteSQL()[0];
        return current.advanceRow() ? current.getLong(0) : 0L;
    }

    private void conflict(String msisdn, long found, long expectedVersion) {
        setAppStatusCode(VERSION_CONFLICT);
        setAppStatusString("at version " + found + ", expected " + expectedVersion);
        throw new VoltAbortException("version conflict on " + msisdn);
    }

    private void execute() {
        VoltTable[] done = voltExecuteSQL();
        if (header0 == null) {
            header0 = done[0]; // the header is queued first
        }
        queued = 0;
    }

    private void queue(SQLStmt stmt, Object... args) {
        if (queued == MAX_BATCH) {
            execute();
        }
        voltQueueSQL(stmt, args);
        queued++;
    }
}

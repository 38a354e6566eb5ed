-- Each write to a waiting operation (its lease, its finish) updates every index it is in, and with a
-- large backlog those index pages no longer stay cached: the write cost grew with the backlog
-- (docs/benchmarks.md). These four indexes only repeated what others give:
--
-- - operations_waiting (001): replay order was priority, then capture time; it is priority, then due
--   time since 008, read from operations_due. bringForward now walks operations_due too.
-- - operations_next_attempt (003, 024): the earliest due time (nextDueAt) is the least of each
--   (priority, route) group's first entry in operations_due: one seek per group.
-- - operations_due_by_route (015, 024): the metric's oldest due time per route, the same way.
-- - operations_backlog_by_route (010): the backlog per route is in operation_counts (008), kept by
--   triggers in the commit of each change.
DROP INDEX operations_waiting;
DROP INDEX operations_next_attempt;
DROP INDEX operations_due_by_route;
DROP INDEX operations_backlog_by_route;

/* Unit tests for the audit trail's --since parser. */
#include "store/audit.h"
#include "tap.h"

int main(void)
{
    const long long now = 1700000000;
    long long t = -1;
    CHECK("since: unix seconds", audit_parse_since("1690000000", now, &t) && t == 1690000000);
    CHECK("since: hours ago", audit_parse_since("24h", now, &t) && t == now - 86400);
    CHECK("since: days ago", audit_parse_since("7d", now, &t) && t == now - 7 * 86400);
    CHECK("since: minutes and seconds ago", audit_parse_since("90m", now, &t) && t == now - 5400 &&
                                                audit_parse_since("30s", now, &t) && t == now - 30);
    CHECK("since: a date", audit_parse_since("2023-11-14", now, &t) && t == 1699920000);
    CHECK("since: a UTC time", audit_parse_since("2023-11-14T22:13:20Z", now, &t) && t == now);
    CHECK("since: an unknown unit refused", !audit_parse_since("3w", now, &t));
    CHECK("since: words refused", !audit_parse_since("yesterday", now, &t) &&
                                      !audit_parse_since("", now, &t) &&
                                      !audit_parse_since("-5", now, &t));
    CHECK("since: a date with junk refused", !audit_parse_since("2023-11-14x", now, &t) &&
                                                 !audit_parse_since("2023-11-14T22:13", now, &t));
    CHECK("since: an age beyond a century refused", !audit_parse_since("99999999999d", now, &t));
    return TAP_DONE();
}

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ot/app/search_lifecycle.h"

typedef struct {
    char names[8][64];
    int n;
} seen;

static void collect(void *data, const char *index, size_t len)
{
    seen *s = data;
    cr_assert_lt(s->n, 8);
    snprintf(s->names[s->n++], sizeof s->names[0], "%.*s", (int)len, index);
}

static int expired(const char *js, int64_t now, int64_t keep, seen *s)
{
    memset(s, 0, sizeof *s);
    return ot_search_lifecycle_expired(js, strlen(js), now, keep, collect, s);
}

Test(search_lifecycle, indices_older_than_the_window_go_but_never_the_newest)
{
    seen s;
    /* Listed out of order: the newest is found by name, not by position. */
    const char *js = "[{\"index\":\"p-events-000002\",\"creation.date\":\"2000\"},"
                     "{\"index\":\"p-events-000003\",\"creation.date\":\"1000\"},"
                     "{\"index\":\"p-events-000001\",\"creation.date\":\"1000\"}]";
    cr_assert_eq(expired(js, 10000, 5000, &s), 3);
    cr_assert_eq(s.n, 2, "000003 is the write index even though it is old");
    cr_assert_str_eq(s.names[0], "p-events-000002");
    cr_assert_str_eq(s.names[1], "p-events-000001");
    /* The window's edge: created exactly at now - keep stays. */
    cr_assert_eq(expired(js, 7000, 5000, &s), 3);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.names[0], "p-events-000001");
    cr_assert_eq(expired(js, 6000, 5000, &s), 3);
    cr_assert_eq(s.n, 0);
}

Test(search_lifecycle, a_single_index_or_none_is_never_deleted)
{
    seen s;
    cr_assert_eq(expired("[{\"index\":\"p-events-000001\",\"creation.date\":\"1\"}]", 1000000, 1, &s), 1);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(expired("[]", 1000000, 1, &s), 0);
    cr_assert_eq(s.n, 0);
}

Test(search_lifecycle, longer_names_sort_after_their_prefix_and_numbers_may_be_bare)
{
    seen s;
    const char *js = "[{\"index\":\"p-events-0000010\",\"creation.date\":5},"
                     "{\"index\":\"p-events-000001\",\"creation.date\":5}]";
    cr_assert_eq(expired(js, 100, 10, &s), 2);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.names[0], "p-events-000001");
}

Test(search_lifecycle, entries_without_a_usable_date_are_kept_and_bad_answers_refused)
{
    seen s;
    const char *js = "[{\"index\":\"a-events-000001\"},{\"index\":\"a-events-000002\",\"creation.date\":\"x1\"},"
                     "{\"index\":\"a-events-000003\",\"creation.date\":\"\"},{\"index\":\"a-events-000004\"}]";
    cr_assert_eq(expired(js, 1000000, 1, &s), 4);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(expired("{\"error\":{}}", 10, 1, &s), -1);
    cr_assert_eq(expired("[{\"name\":\"x\"}]", 10, 1, &s), -1);
    cr_assert_eq(expired("[{\"index\":7}]", 10, 1, &s), -1);
    cr_assert_eq(expired("[", 10, 1, &s), -1);
    cr_assert_eq(s.n, 0);
}

/* app/indexer: the index-prefix grammar (what Elasticsearch accepts in an
 * index name, narrowed to what needs no escaping in a URL path or JSON). The
 * indexer itself runs against a real node in tests/integration/test_search_indexer.py. */
#include <criterion/criterion.h>
#include <string.h>

#include "ot/app/indexer.h"

Test(indexer, prefix_grammar)
{
    cr_expect(ot_es_prefix_valid("ordertrack"));
    cr_expect_not(ot_es_prefix_valid("ot-t0123_x.y")); /* no dots: ".x" names a hidden index */
    cr_expect(ot_es_prefix_valid("a1-b_2"));
    cr_expect_not(ot_es_prefix_valid(NULL));
    cr_expect_not(ot_es_prefix_valid(""));
    cr_expect_not(ot_es_prefix_valid("Upper"));
    cr_expect_not(ot_es_prefix_valid("-lead"));
    cr_expect_not(ot_es_prefix_valid("_lead"));
    cr_expect_not(ot_es_prefix_valid("a b"));
    cr_expect_not(ot_es_prefix_valid("a/b"));
    cr_expect_not(ot_es_prefix_valid("a*"));
    cr_expect_not(ot_es_prefix_valid("a\"b"));
    char longest[OT_ES_PREFIX_MAX];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = 0;
    cr_expect(ot_es_prefix_valid(longest));
    char over[OT_ES_PREFIX_MAX + 1];
    memset(over, 'a', sizeof over - 1);
    over[sizeof over - 1] = 0;
    cr_expect_not(ot_es_prefix_valid(over));
}

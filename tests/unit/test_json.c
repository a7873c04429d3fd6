#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/base64.h"
#include "ot/codec/json.h"

#define NTOK 128
static ot_json_tok toks[NTOK];

static int parse_n(ot_json *d, const char *s, size_t n) { return ot_json_parse(d, s, n, toks, NTOK); }
static int parse(ot_json *d, const char *s) { return parse_n(d, s, strlen(s)); }
static bool ok(const char *s)
{
    ot_json d;
    return parse(&d, s) == 0;
}

/* Unescaped value of string token t, NUL-terminated in a static scratch. */
static const char *str_of(const ot_json *d, int t, size_t *len)
{
    static ot_buf b = OT_BUF_INIT;
    ot_buf_reset(&b);
    cr_assert_eq(ot_json_get_str(d, t, &b), 0);
    *len = b.len;
    ot_buf_append(&b, "", 1);
    return b.data;
}

/* ---------------- reader ---------------- */

Test(json_parse, object_lookup_by_key)
{
    ot_json d;
    cr_assert_eq(parse(&d, " {\"id\": 42, \"name\":\"x\", \"ok\":true, \"none\":null} "), 0);
    cr_assert(ot_json_is_obj(&d, 0));
    int64_t v;
    cr_assert_eq(ot_json_get_int64(&d, ot_json_obj_get(&d, 0, "id"), &v), 0);
    cr_assert_eq(v, 42);
    cr_assert(ot_json_str_eq(&d, ot_json_obj_get(&d, 0, "name"), "x"));
    bool b = false;
    cr_assert_eq(ot_json_get_bool(&d, ot_json_obj_get(&d, 0, "ok"), &b), 0);
    cr_assert(b);
    cr_assert(ot_json_is_null(&d, ot_json_obj_get(&d, 0, "none")));
    cr_assert_eq(ot_json_obj_get(&d, 0, "missing"), -1);
    cr_assert_eq(ot_json_obj_get(&d, 0, "i"), -1, "a key prefix must not match");
    cr_assert_eq(ot_json_obj_get(&d, ot_json_obj_get(&d, 0, "id"), "x"), -1, "not an object");
}

Test(json_parse, lookup_skips_nested_values_and_keys_inside_them)
{
    ot_json d;
    cr_assert_eq(parse(&d, "{\"a\":{\"b\":[1,{\"c\":2}],\"c\":3},\"c\":4,\"arr\":[[],[1,2],{}]}"), 0);
    int64_t v;
    cr_assert_eq(ot_json_get_int64(&d, ot_json_obj_get(&d, 0, "c"), &v), 0);
    cr_assert_eq(v, 4, "the top-level c, not a nested one");
    int a = ot_json_obj_get(&d, 0, "a");
    cr_assert_eq(ot_json_get_int64(&d, ot_json_obj_get(&d, a, "c"), &v), 0);
    cr_assert_eq(v, 3);
    int arr = ot_json_obj_get(&d, 0, "arr");
    cr_assert_eq(ot_json_arr_len(&d, arr), 3);
    cr_assert(ot_json_is_arr(&d, ot_json_arr_at(&d, arr, 0)));
    cr_assert_eq(ot_json_arr_len(&d, ot_json_arr_at(&d, arr, 1)), 2);
    cr_assert(ot_json_is_obj(&d, ot_json_arr_at(&d, arr, 2)));
    cr_assert_eq(ot_json_arr_at(&d, arr, 3), -1);
    cr_assert_eq(ot_json_arr_at(&d, arr, -1), -1);
    cr_assert_eq(ot_json_skip(&d, 0), d.ntoks);
    cr_assert_eq(ot_json_skip(&d, arr), d.ntoks);
}

Test(json_parse, array_elements_and_types)
{
    ot_json d;
    cr_assert_eq(parse(&d, "[1, -2.5e3, \"s\", false, null, {\"k\":[]}, []]"), 0);
    cr_assert_eq(ot_json_arr_len(&d, 0), 7);
    cr_assert(ot_json_is_num(&d, ot_json_arr_at(&d, 0, 0)));
    cr_assert(ot_json_is_num(&d, ot_json_arr_at(&d, 0, 1)));
    cr_assert(ot_json_is_str(&d, ot_json_arr_at(&d, 0, 2)));
    cr_assert(ot_json_is_bool(&d, ot_json_arr_at(&d, 0, 3)));
    cr_assert(ot_json_is_null(&d, ot_json_arr_at(&d, 0, 4)));
    cr_assert(ot_json_is_obj(&d, ot_json_arr_at(&d, 0, 5)));
    cr_assert(ot_json_is_arr(&d, ot_json_arr_at(&d, 0, 6)));
    cr_assert_not(ot_json_is_num(&d, ot_json_arr_at(&d, 0, 3)));
    cr_assert_not(ot_json_is_bool(&d, ot_json_arr_at(&d, 0, 4)));
    cr_assert_eq(ot_json_arr_len(&d, ot_json_arr_at(&d, 0, 0)), -1);
}

Test(json_parse, raw_and_raw_value)
{
    ot_json d;
    cr_assert_eq(parse(&d, "{\"s\":\"a\\nb\",\"o\":{\"x\": 1},\"n\":-1.5}"), 0);
    int s = ot_json_obj_get(&d, 0, "s");
    cr_assert(ot_str_eq_lit(ot_json_raw(&d, s), "a\\nb"));
    cr_assert(ot_str_eq_lit(ot_json_raw_value(&d, s), "\"a\\nb\""));
    cr_assert(ot_str_eq_lit(ot_json_raw_value(&d, ot_json_obj_get(&d, 0, "o")), "{\"x\": 1}"));
    cr_assert(ot_str_eq_lit(ot_json_raw_value(&d, ot_json_obj_get(&d, 0, "n")), "-1.5"));
}

Test(json_parse, scalar_roots)
{
    ot_json d;
    int64_t v;
    cr_assert_eq(parse(&d, "7"), 0);
    cr_assert_eq(ot_json_get_int64(&d, 0, &v), 0);
    cr_assert_eq(v, 7);
    cr_assert(ok(" true "));
    cr_assert(ok("null"));
    cr_assert(ok("\"s\""));
    cr_assert_not(ok("1 2"));
    cr_assert_not(ok("\"a\" \"b\""));
    cr_assert_not(ok(""));
    cr_assert_not(ok("   "));
}

Test(json_parse, bad_literals_rejected)
{
    const char *bad[] = { "tru",  "nul",  "True", "nulll", "fals", "01",   "1.",    "-",  "+1",  "1e",   "1e+",
                          ".5",   "-01",  "0x10", "1.e3",  "- 1",  "NaN",  "Infinity", "1E-", "--1", "00" };
    char buf[64];
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        cr_assert_not(ok(bad[i]), "root %s", bad[i]);
        snprintf(buf, sizeof buf, "[%s]", bad[i]);
        cr_assert_not(ok(buf), "%s", buf);
        snprintf(buf, sizeof buf, "{\"k\":%s}", bad[i]);
        cr_assert_not(ok(buf), "%s", buf);
    }
    const char *good[] = { "0", "-0", "1.5", "1e3", "1E+3", "-2.5e-3", "0.0", "123456789012345678901234567890" };
    for (size_t i = 0; i < OT_ARRAY_LEN(good); i++) {
        snprintf(buf, sizeof buf, "[%s]", good[i]);
        cr_assert(ok(buf), "%s", buf);
    }
}

Test(json_parse, structural_errors_jsmn_would_accept)
{
    const char *bad[] = { "[1 2]",      "[1,,2]",       "[,1]",        "[1,]",          "{\"a\":1,}",
                          "{\"a\" 1}",  "{\"a\":1 \"b\":2}", "{\"a\":1:2}", "[\"a\":1]",    "{\"a\"}",
                          "{1:2}",      "{\"a\":}",     "[}",          "{]",            "[1]]",
                          "{\"a\":1}}", "[",            "{\"a\":[1}",  "\"abc",         "{,}",
                          "{\"a\"::1}", "[1,\n]",       "{\"a\":1,,\"b\":2}" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert_not(ok(bad[i]), "%s", bad[i]);
    cr_assert(ok(" { \"a\" : [ 1 , 2 ] , \"b\" : { } } \r\n\t"));
}

Test(json_parse, trailing_garbage_rejected)
{
    cr_assert_not(ok("{} x"));
    cr_assert_not(ok("{}{}"));
    cr_assert_not(ok("[1] ,"));
    cr_assert_not(ok("{\"a\":1} // comment"));
    /* A NUL byte is not whitespace: the bytes after it must still count. */
    ot_json d;
    cr_assert_neq(parse_n(&d, "{}\0{}", 5), 0);
    cr_assert_neq(parse_n(&d, "[\"a\0b\"]", 7), 0);
    cr_assert_eq(parse_n(&d, "{}", 2), 0);
}

Test(json_parse, duplicate_keys_rejected_even_when_escaped)
{
    cr_assert_not(ok("{\"a\":1,\"a\":2}"));
    cr_assert_not(ok("{\"role\":\"CUSTOMER\",\"x\":[1,{}],\"role\":\"ADMIN\"}"));
    cr_assert_not(ok("{\"a\":1,\"\\u0061\":2}"), "escaped spelling of the same key");
    cr_assert_not(ok("{\"o\":{\"k\":1,\"k\":1}}"), "nested object");
    cr_assert(ok("{\"a\":{\"a\":1},\"b\":{\"a\":2}}"), "same key in different objects is fine");
    cr_assert(ok("{\"a\":1,\"ab\":2,\"A\":3}"));
    cr_assert_not(ok("{\"\\u0061b\":1,\"a\\u0062\":2}"), "both escaped, differently");
    cr_assert_not(ok("{\"\\ud83d\\ude00\":1,\"\xF0\x9F\x98\x80\":2}"), "a surrogate pair and its UTF-8");
    cr_assert(ok("{\"a\":1,\"a\\u0000\":2,\"\":3}"), "a NUL makes a different key; the empty key is a key");
    cr_assert_not(ok("{\"\":1,\"\":2}"));
}

Test(json_parse, too_many_tokens_rejected)
{
    ot_json d;
    ot_json_tok small[4];
    cr_assert_eq(ot_json_parse(&d, "[1,2,3]", 7, small, 4), 0);
    cr_assert_neq(ot_json_parse(&d, "[1,2,3,4]", 9, small, 4), 0);
    cr_assert_neq(ot_json_parse(&d, "{\"a\":1,\"b\":2}", 13, small, 4), 0);
    cr_assert_neq(ot_json_parse(&d, "1", 1, small, 0), 0);
}

Test(json_parse, nesting_depth_is_bounded)
{
    char deep[2 * (OT_JSON_MAX_DEPTH + 1) + 1];
    ot_json_tok many[OT_JSON_MAX_DEPTH + 2];
    ot_json d;
    for (int n = OT_JSON_MAX_DEPTH; n <= OT_JSON_MAX_DEPTH + 1; n++) {
        memset(deep, '[', (size_t)n);
        memset(deep + n, ']', (size_t)n);
        int rc = ot_json_parse(&d, deep, 2 * (size_t)n, many, (int)OT_ARRAY_LEN(many));
        cr_assert_eq(rc, n <= OT_JSON_MAX_DEPTH ? 0 : OT_ERR, "depth %d", n);
    }
}

Test(json_string, every_escape_unescapes)
{
    ot_json d;
    size_t n;
    cr_assert_eq(parse(&d, "[\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t u\\u0041\\u00e9\\u20AC\"]"), 0);
    const char *s = str_of(&d, 1, &n);
    const char want[] = "q\" b\\ s/ \b\f\n\r\t uA\xC3\xA9\xE2\x82\xAC";
    cr_assert_eq(n, sizeof want - 1);
    cr_assert_eq(memcmp(s, want, n), 0);
    cr_assert(ot_json_str_eq(&d, 1, want));
    cr_assert_not(ot_json_str_eq(&d, 1, "q\""));
}

Test(json_string, surrogate_pair_becomes_one_4_byte_char)
{
    ot_json d;
    size_t n;
    cr_assert_eq(parse(&d, "\"\\ud83d\\ude00x\""), 0);
    const char *s = str_of(&d, 0, &n);
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(s, "\xF0\x9F\x98\x80x", 5), 0);
    cr_assert(ot_json_str_eq(&d, 0, "\xF0\x9F\x98\x80x"));
}

Test(json_string, nul_escape_is_kept_with_its_length)
{
    ot_json d;
    size_t n;
    cr_assert_eq(parse(&d, "\"a\\u0000b\""), 0);
    const char *s = str_of(&d, 0, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(s, "a\0b", 3), 0);
    cr_assert_not(ot_json_str_eq(&d, 0, "a"), "a C literal cannot equal a value with NUL");
}

Test(json_string, bad_escapes_and_lone_surrogates_rejected)
{
    const char *bad[] = { "\"\\ud800\"",        "\"\\udc00\"",        "\"\\ud800x\"",       "\"\\ud800\\u0041\"",
                          "\"\\ud800\\ud800\"", "\"\\udbff\\n\"",     "\"\\u12\"",          "\"\\u12g4\"",
                          "\"\\x41\"",          "\"\\a\"",            "\"\\'\"",            "\"\\U0041\"",
                          "\"\\\"",             "\"\\ud83d\\ude0\"" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert_not(ok(bad[i]), "%s", bad[i]);
    cr_assert(ok("\"\\udbff\\udfff\""), "U+10FFFF");
}

Test(json_string, raw_controls_and_invalid_utf8_rejected)
{
    const char *bad[] = { "\"a\tb\"",        "\"a\nb\"",           "\"\x01\"",           "\"\x80\"",
                          "\"\xC3\"",        "\"\xC0\xAF\"",       "\"\xE0\x80\xAF\"",   "\"\xED\xA0\x80\"",
                          "\"\xF4\x90\x80\x80\"", "\"\xF5\x80\x80\x80\"", "\"\xFF\"",    "\"\xE2\x82\"" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert_not(ok(bad[i]), "case %zu", i);
    cr_assert_not(ok("{\"k\xFF\":1}"), "keys are checked too");
    cr_assert(ok("\"\x7F \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF\""));
}

Test(json_string, empty_string_into_unallocated_buffer)
{
    /* Found by fuzz_json: an ot_buf that never allocated has data == NULL. */
    ot_json d;
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(parse(&d, "\"\""), 0);
    cr_assert_eq(ot_json_get_str(&d, 0, &b), 0);
    cr_assert_eq(b.len, 0);
    cr_assert(ot_json_str_eq(&d, 0, ""));
    ot_buf_free(&b);
}

Test(json_string, get_str_buf_respects_capacity)
{
    ot_json d;
    char out[4];
    size_t n = 99;
    cr_assert_eq(parse(&d, "[\"abcd\",\"abcde\",\"\\u20ac\\n\",1]"), 0);
    cr_assert_eq(ot_json_get_str_buf(&d, 1, out, 4, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(memcmp(out, "abcd", 4), 0);
    cr_assert_eq(ot_json_get_str_buf(&d, 2, out, 4, &n), OT_ERR);
    cr_assert_eq(ot_json_get_str_buf(&d, 3, out, 4, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(memcmp(out, "\xE2\x82\xAC\n", 4), 0);
    cr_assert_eq(ot_json_get_str_buf(&d, 3, out, 3, &n), OT_ERR);
    cr_assert_eq(ot_json_get_str_buf(&d, 4, out, 4, &n), OT_ERR, "not a string");
}

Test(json_number, int64_bounds)
{
    ot_json d;
    int64_t v;
    cr_assert_eq(parse(&d, "[9223372036854775807,-9223372036854775808,9223372036854775808,"
                           "-9223372036854775809,1.5,1e3,-0,99999999999999999999,0]"),
                 0);
    cr_assert_eq(ot_json_get_int64(&d, 1, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(ot_json_get_int64(&d, 2, &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(ot_json_get_int64(&d, 3, &v), OT_ERR);
    cr_assert_eq(ot_json_get_int64(&d, 4, &v), OT_ERR);
    cr_assert_eq(ot_json_get_int64(&d, 5, &v), OT_ERR);
    cr_assert_eq(ot_json_get_int64(&d, 6, &v), OT_ERR);
    cr_assert_eq(ot_json_get_int64(&d, 7, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(ot_json_get_int64(&d, 8, &v), OT_ERR);
    cr_assert_eq(ot_json_get_int64(&d, 0, &v), OT_ERR, "an array is not a number");
    cr_assert_eq(ot_json_get_int64(&d, 99, &v), OT_ERR, "out of range token");
}

Test(json_number, get_bool_only_on_literals)
{
    ot_json d;
    bool b = true;
    cr_assert_eq(parse(&d, "[false,\"true\",0]"), 0);
    cr_assert_eq(ot_json_get_bool(&d, 1, &b), 0);
    cr_assert_not(b);
    cr_assert_eq(ot_json_get_bool(&d, 2, &b), OT_ERR);
    cr_assert_eq(ot_json_get_bool(&d, 3, &b), OT_ERR);
}

/* ---------------- writer ---------------- */

static ot_buf wb;
static void wb_setup(void) { ot_buf_init(&wb); }
static void wb_teardown(void) { ot_buf_free(&wb); }
static bool wb_is(const char *s) { return ot_str_eq_lit(ot_buf_str(&wb), s); }

Test(json_writer, nesting_and_commas, .init = wb_setup, .fini = wb_teardown)
{
    ot_jw w;
    ot_jw_init(&w, &wb);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "a");
    ot_jw_int(&w, -3);
    ot_jw_key(&w, "b");
    ot_jw_arr_open(&w);
    ot_jw_uint(&w, UINT64_MAX);
    ot_jw_bool(&w, true);
    ot_jw_null(&w);
    ot_jw_obj_open(&w);
    ot_jw_obj_close(&w);
    ot_jw_arr_open(&w);
    ot_jw_arr_close(&w);
    ot_jw_raw(&w, OT_STR("{\"r\":1}"));
    ot_jw_arr_close(&w);
    ot_jw_key(&w, "c");
    ot_jw_cstr(&w, NULL);
    ot_jw_key(&w, "d");
    ot_jw_double(&w, 0.1);
    ot_jw_obj_close(&w);
    cr_assert_eq(ot_jw_error(&w), 0);
    cr_assert(wb_is("{\"a\":-3,\"b\":[18446744073709551615,true,null,{},[],{\"r\":1}],\"c\":null,\"d\":0.1}"),
              "%.*s", (int)wb.len, wb.data);
}

Test(json_writer, doubles_round_trip_and_nonfinite_is_null, .init = wb_setup, .fini = wb_teardown)
{
    double vals[] = { 0.1, 1.0 / 3, 1e300, -2.5e-300, 123456789.125, 5e-324 };
    for (size_t i = 0; i < OT_ARRAY_LEN(vals); i++) {
        ot_buf_reset(&wb);
        ot_jw w;
        ot_jw_init(&w, &wb);
        ot_jw_double(&w, vals[i]);
        cr_assert_eq(ot_jw_error(&w), 0);
        ot_json d;
        cr_assert_eq(parse_n(&d, wb.data, wb.len), 0, "%.*s", (int)wb.len, wb.data);
        ot_buf_append(&wb, "", 1);
        cr_assert_eq(strtod(wb.data, NULL), vals[i]);
    }
    ot_buf_reset(&wb);
    ot_jw w;
    ot_jw_init(&w, &wb);
    ot_jw_arr_open(&w);
    ot_jw_double(&w, NAN);
    ot_jw_double(&w, INFINITY);
    ot_jw_arr_close(&w);
    cr_assert(wb_is("[null,null]"));
}

Test(json_writer, misuse_latches_error, .init = wb_setup, .fini = wb_teardown)
{
    ot_jw w;
    ot_jw_init(&w, &wb);
    ot_jw_obj_open(&w);
    ot_jw_int(&w, 1); /* value without key */
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    ot_jw_arr_open(&w);
    ot_jw_key(&w, "k"); /* key in array */
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    ot_jw_arr_open(&w);
    ot_jw_obj_close(&w); /* mismatched close */
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    ot_jw_obj_open(&w); /* unclosed */
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "k"); /* dangling key */
    ot_jw_obj_close(&w);
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    ot_jw_int(&w, 1);
    ot_jw_int(&w, 2); /* two roots */
    cr_assert_eq(ot_jw_error(&w), OT_ERR);

    ot_jw_init(&w, &wb);
    cr_assert_eq(ot_jw_error(&w), OT_ERR, "nothing written is not JSON");

    ot_jw_init(&w, &wb);
    for (int i = 0; i < OT_JW_MAX_DEPTH; i++)
        ot_jw_arr_open(&w);
    cr_assert_eq(w.err, 0);
    ot_jw_arr_open(&w);
    cr_assert_eq(ot_jw_error(&w), OT_ERR, "depth over the limit");
}

Test(json_writer, escaping, .init = wb_setup, .fini = wb_teardown)
{
    const char in[] = "q\"b\\n\n\r\t\b\f\x01\x1f\x7f/\xC3\xA9|\xFF|\xC3|\xED\xA0\x80|\0z";
    cr_assert_eq(ot_json_escape(&wb, in, sizeof in - 1), 0);
    const char want[] = "q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\\u001f\x7f/\xC3\xA9|\xEF\xBF\xBD|\xEF\xBF\xBD|"
                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|\\u0000z";
    cr_assert_eq(wb.len, sizeof want - 1, "%.*s", (int)wb.len, wb.data);
    cr_assert_eq(memcmp(wb.data, want, wb.len), 0, "%.*s", (int)wb.len, wb.data);
}

Test(json_writer, round_trip_through_parser, .init = wb_setup, .fini = wb_teardown)
{
    /* Every byte value, plus invalid UTF-8, as a key and a value: the writer
     * must always produce what the parser accepts, and valid input must come
     * back byte for byte. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    const char valid[] = "ctl\x01\x1f quote\" bs\\ \xE2\x82\xAC \xF0\x9F\x98\x80 end";
    ot_jw w;
    ot_jw_init(&w, &wb);
    ot_jw_obj_open(&w);
    ot_jw_key_str(&w, ot_str_make(valid, sizeof valid - 1));
    ot_jw_str(&w, ot_str_make(valid, sizeof valid - 1));
    ot_jw_key(&w, "all");
    ot_jw_str(&w, ot_str_make(all, sizeof all));
    ot_jw_key(&w, "n");
    ot_jw_int(&w, INT64_MIN);
    ot_jw_obj_close(&w);
    cr_assert_eq(ot_jw_error(&w), 0);

    ot_json d;
    cr_assert_eq(parse_n(&d, wb.data, wb.len), 0, "%.*s", (int)wb.len, wb.data);
    size_t n;
    int k = 1; /* first key */
    const char *s = str_of(&d, k, &n);
    cr_assert_eq(n, sizeof valid - 1);
    cr_assert_eq(memcmp(s, valid, n), 0);
    s = str_of(&d, ot_json_obj_get(&d, 0, valid), &n);
    cr_assert_eq(memcmp(s, valid, n), 0);
    s = str_of(&d, ot_json_obj_get(&d, 0, "all"), &n);
    cr_assert_eq(memcmp(s, all, 128), 0, "ASCII incl. NUL and DEL survive");
    cr_assert_eq(n, 128 + 128 * 3, "each invalid byte became U+FFFD");
    int64_t v;
    cr_assert_eq(ot_json_get_int64(&d, ot_json_obj_get(&d, 0, "n"), &v), 0);
    cr_assert_eq(v, INT64_MIN);
}

/* ---------------- base64 ---------------- */

Test(base64, rfc4648_vectors_both_alphabets)
{
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    const char *url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    char out[16];
    uint8_t back[16];
    size_t n;
    for (size_t i = 0; i < OT_ARRAY_LEN(in); i++) {
        size_t len = strlen(in[i]);
        size_t w = ot_b64_encode((const uint8_t *)in[i], len, out, false);
        cr_assert_eq(w, OT_B64_ENC_LEN(len));
        cr_assert(ot_str_eq(ot_str_make(out, w), ot_str_c(std[i])));
        w = ot_b64_encode((const uint8_t *)in[i], len, out, true);
        cr_assert_eq(w, OT_B64URL_ENC_LEN(len));
        cr_assert(ot_str_eq(ot_str_make(out, w), ot_str_c(url[i])));
        cr_assert_eq(ot_b64_decode(std[i], strlen(std[i]), back, sizeof back, &n, false), 0);
        cr_assert(n == len && memcmp(back, in[i], n) == 0);
        cr_assert_eq(ot_b64_decode(url[i], strlen(url[i]), back, sizeof back, &n, true), 0);
        cr_assert(n == len && memcmp(back, in[i], n) == 0);
    }
}

Test(base64, url_alphabet_differs_from_standard)
{
    const uint8_t in[] = { 0xfb, 0xff, 0xbf };
    char out[8];
    cr_assert_eq(ot_b64_encode(in, 3, out, true), 4);
    cr_assert_eq(memcmp(out, "-_-_", 4), 0);
    cr_assert_eq(ot_b64_encode(in, 3, out, false), 4);
    cr_assert_eq(memcmp(out, "+/+/", 4), 0);
    uint8_t back[4];
    size_t n;
    cr_assert_eq(ot_b64_decode("-_-_", 4, back, 4, &n, false), OT_ERR);
    cr_assert_eq(ot_b64_decode("+/+/", 4, back, 4, &n, true), OT_ERR);
}

Test(base64, strict_decoding_rejects_noncanonical_input)
{
    uint8_t b[16];
    size_t n;
    const char *bad_url[] = { "Zg=", "Zg==", "Z", "Zh", "Zm9", "Zm 9v", "Zm9v\n", "Zm9v=" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad_url); i++)
        cr_assert_eq(ot_b64_decode(bad_url[i], strlen(bad_url[i]), b, sizeof b, &n, true), OT_ERR, "%s",
                     bad_url[i]);
    /* "Zm9" carries "fo" plus 2 non-zero pad bits; "Zh" likewise. */
    const char *bad_std[] = { "Zg", "Zg=", "Zg===", "Zh==", "Z===", "====", "Zm=v", "Zm9v====" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad_std); i++)
        cr_assert_eq(ot_b64_decode(bad_std[i], strlen(bad_std[i]), b, sizeof b, &n, false), OT_ERR, "%s",
                     bad_std[i]);
    cr_assert_eq(ot_b64_decode("Zm9vYmFy", 8, b, 5, &n, true), OT_ERR, "output over cap");
    cr_assert_eq(ot_b64_decode("Zm9vYmFy", 8, b, 6, &n, true), 0);
}

/* ---------------- the one-pass reader's own shape ---------------- */

Test(json_onepass, every_proper_prefix_of_a_document_is_rejected)
{
    const char *doc = "{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\\n\xE2\x82\xAC\"],\"b\":{\"c\":{}},\"d\":[]}";
    size_t n = strlen(doc);
    ot_json d;
    cr_assert_eq(parse_n(&d, doc, n), 0);
    for (size_t k = 0; k < n; k++)
        cr_assert_neq(parse_n(&d, doc, k), 0, "prefix of %zu bytes", k);
}

Test(json_onepass, skip_is_the_end_of_each_subtree)
{
    ot_json d;
    cr_assert_eq(parse(&d, "{\"a\":{\"x\":[1,[2]]},\"b\":3,\"c\":[]}"), 0);
    /* 0 obj, 1 "a", 2 obj, 3 "x", 4 arr, 5 1, 6 arr, 7 2, 8 "b", 9 3, 10 "c", 11 arr */
    cr_assert_eq(d.ntoks, 12);
    int want[] = { 12, 8, 8, 8, 8, 6, 8, 8, 10, 10, 12, 12 };
    for (int t = 0; t < d.ntoks; t++)
        cr_assert_eq(ot_json_skip(&d, t), want[t], "token %d", t);
    cr_assert_eq(d.toks[0].size, 3);
    cr_assert_eq(d.toks[1].size, 1, "a key has one child");
    cr_assert_eq(d.toks[4].size, 2);
    cr_assert_eq(ot_json_obj_get(&d, 0, "c"), 11);
    cr_assert_eq(ot_json_arr_at(&d, 4, 1), 6);
}

Test(json_onepass, token_budget_is_exact)
{
    /* 7 tokens: obj, key, arr, 1, "s", key, null */
    const char *doc = "{\"k\":[1,\"s\"],\"n\":null}";
    ot_json_tok t7[7];
    ot_json d;
    cr_assert_eq(ot_json_parse(&d, doc, strlen(doc), t7, 7), 0);
    cr_assert_eq(d.ntoks, 7);
    for (int max = 1; max < 7; max++) {
        cr_assert_neq(ot_json_parse(&d, doc, strlen(doc), t7, max), 0, "budget %d", max);
        cr_assert_eq(d.ntoks, 0, "a failed parse leaves no tokens");
    }
}

Test(json_onepass, depth_bound_counts_objects_and_arrays_alike)
{
    ot_buf b = OT_BUF_INIT;
    static ot_json_tok many[2 * OT_JSON_MAX_DEPTH + 4];
    ot_json d;
    for (int n = OT_JSON_MAX_DEPTH - 1; n <= OT_JSON_MAX_DEPTH + 1; n++) {
        ot_buf_reset(&b);
        for (int i = 0; i < n; i++)
            ot_buf_append(&b, i % 2 ? "[" : "{\"k\":", i % 2 ? 1 : 5);
        ot_buf_append(&b, "0", 1);
        for (int i = n - 1; i >= 0; i--)
            ot_buf_append(&b, i % 2 ? "]" : "}", 1);
        int rc = ot_json_parse(&d, b.data, b.len, many, (int)OT_ARRAY_LEN(many));
        cr_assert_eq(rc, n <= OT_JSON_MAX_DEPTH ? 0 : OT_ERR, "depth %d", n);
    }
    ot_buf_free(&b);
}

Test(json_onepass, duplicates_found_among_many_keys_and_spellings)
{
    char buf[2048];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"k%02d\":%d", i ? "," : "", i, i);
    cr_assert(ok(strcat(strcpy((char[2100]){ 0 }, buf), "}")), "40 distinct keys");
    cr_assert_not(ok(strcat(strcpy((char[2100]){ 0 }, buf), ",\"k00\":1}")), "last repeats the first");
    cr_assert_not(ok(strcat(strcpy((char[2100]){ 0 }, buf), ",\"k3\\u0039\":1}")), "escaped spelling of k39");
}

Test(json_onepass, escape_flag_and_fast_compare)
{
    ot_json d;
    cr_assert_eq(parse(&d, "{\"id\":\"i\\u0064\",\"idx\":\"\\/\"}"), 0);
    cr_assert_eq(d.toks[1].esc, 0);
    cr_assert_eq(d.toks[2].esc, 1);
    cr_assert(ot_json_str_eq(&d, 1, "id"));
    cr_assert_not(ot_json_str_eq(&d, 1, "i"));
    cr_assert_not(ot_json_str_eq(&d, 1, "idx"));
    cr_assert(ot_json_str_eq(&d, 2, "id"), "escaped value equals its plain spelling");
    cr_assert_not(ot_json_str_eq(&d, 2, "idd"));
    cr_assert(ot_json_str_eq(&d, 4, "/"));
    cr_assert_eq(ot_json_obj_get(&d, 0, "idx"), 4);
}

Test(json_onepass, numbers_end_where_the_grammar_says)
{
    const char *good[] = { "[0,-0,1e5,-1E-5,0.25,10]", "{\"a\":-1.0e+2}", "-1", "1e0", "  0  " };
    for (size_t i = 0; i < OT_ARRAY_LEN(good); i++)
        cr_assert(ok(good[i]), "%s", good[i]);
    const char *bad[] = { "[1true]", "[0x]", "[1.5.5]", "[1e5e5]", "[-]", "{\"a\":1-}", "[1\"s\"]", "[01]",
                          "[1,]", "-", "1.", "[.1]", "[1e]", "[tru]", "[truex]", "[nul]", "[null1]" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert_not(ok(bad[i]), "%s", bad[i]);
}

/* A failed second try kept its heap array in *heap, so every caller had to
 * free it on the error path too; ot_search_doc_order did not (a leak, found
 * by fuzz_search_doc). Now a failure leaves nothing to free. */
Test(json_grow, a_text_too_large_for_the_stack_grows_to_the_heap_and_a_failure_leaves_nothing)
{
    char big[600];
    memset(big, '1', sizeof big);
    big[0] = '[';
    for (size_t i = 2; i < sizeof big - 2; i += 2)
        big[i] = ',';
    big[sizeof big - 1] = ']';
    ot_json_tok stack[8], *heap = (ot_json_tok *)1;
    ot_json d;
    cr_assert_eq(ot_json_parse_grow(&d, big, sizeof big, stack, 8, &heap), 0);
    cr_expect_not_null(heap);
    cr_expect_eq(ot_json_arr_len(&d, 0), 299);
    free(heap);
    big[300] = 'x';
    cr_expect_eq(ot_json_parse_grow(&d, big, sizeof big, stack, 8, &heap), OT_ERR);
    cr_expect_null(heap);
    free(heap);
}

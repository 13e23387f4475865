/* The value tree: construction, lookup, JSON writer and the strict parser. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

static char *to_json(const struct md_node *n, int indent)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	struct md_error *err = md_node_write_json(n, f, indent);
	ck_assert_msg(err == NULL, "write: %s", err ? err->message : "");
	fclose(f);
	return buf;
}

static struct md_node *parse_ok(const char *text)
{
	struct md_node *n = NULL;
	struct md_error *err = md_node_parse_json(text, strlen(text), &n);
	ck_assert_msg(err == NULL, "parse of %s failed: %s", text, err ? err->message : "");
	ck_assert_ptr_nonnull(n);
	return n;
}

/* Parse then write compactly: the canonical form of a text. */
static char *canon(const char *text)
{
	struct md_node *n = parse_ok(text);
	char *out = to_json(n, 0);
	md_node_destroy(n);
	return out;
}

static void assert_canon(const char *in, const char *expected)
{
	char *out = canon(in);
	ck_assert_msg(strcmp(out, expected) == 0, "%s -> %s, expected %s", in, out, expected);
	free(out);
}

static void assert_bad(const char *text, size_t len)
{
	struct md_node *n = (struct md_node *)0x1;
	struct md_error *err = md_node_parse_json(text, len, &n);
	ck_assert_msg(err != NULL, "accepted malformed JSON: %.*s", (int)len, text);
	ck_assert_msg(err->code == MD_ERR_BAD_DATA, "%.*s: code %d", (int)len, text, err->code);
	ck_assert_msg(strstr(err->message, "at byte") || strstr(err->message, "larger"),
		      "no offset in: %s", err->message);
	ck_assert_ptr_eq(n, (struct md_node *)0x1); /* written only on success */
	md_error_destroy(err);
}

START_TEST(test_build_and_lookup)
{
	struct md_node *o = md_node_object();
	ck_assert_ptr_null(md_node_set_u64(o, "b", 2));
	ck_assert_ptr_null(md_node_set_string(o, "a", "x"));
	ck_assert_ptr_null(md_node_set_bool(o, "c", true));
	ck_assert_ptr_null(md_node_set_hex(o, "addr", 0x7f00dead0000ULL));
	ck_assert_ptr_null(md_node_set_i64(o, "neg", -5));
	ck_assert_ptr_null(md_node_set_double(o, "d", 0.25));
	/* replacing keeps the key's place */
	ck_assert_ptr_null(md_node_set_u64(o, "b", 3));
	ck_assert_uint_eq(md_node_count(o), 6);
	ck_assert_str_eq(md_node_key_at(o, 0), "b");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(o, "b")), 3);
	ck_assert_str_eq(md_node_get_string(md_node_get(o, "a")), "x");
	ck_assert(md_node_get_bool(md_node_get(o, "c")));
	ck_assert_str_eq(md_node_get_string(md_node_get(o, "addr")), "0x7f00dead0000");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(o, "addr")), 0x7f00dead0000ULL);
	ck_assert_int_eq(md_node_get_i64(md_node_get(o, "neg")), -5);
	ck_assert_uint_eq(md_node_get_u64(md_node_get(o, "neg")), 0);
	ck_assert_double_eq(md_node_get_double(md_node_get(o, "d")), 0.25);
	ck_assert_ptr_null(md_node_get(o, "missing"));
	ck_assert_ptr_null(md_node_get_string(md_node_get(o, "b")));
	ck_assert_int_eq(md_node_type(NULL), MD_NODE_NULL);
	ck_assert_uint_eq(md_node_count(NULL), 0);

	char *s = to_json(o, 0);
	ck_assert_str_eq(s, "{\"b\":3,\"a\":\"x\",\"c\":true,\"addr\":\"0x7f00dead0000\",\"neg\":-5,"
			    "\"d\":0.25}");
	free(s);

	/* a NULL child (failed constructor) is an out-of-memory error, not a crash */
	struct md_error *err = md_node_set(o, "x", NULL);
	ck_assert_ptr_eq(err, &md_error_nomem);
	ck_assert_ptr_eq(md_node_append(o, NULL), &md_error_nomem);
	/* wrong container: an error, and the child is not leaked (ASan checks) */
	err = md_node_append(o, md_node_u64(1));
	ck_assert_ptr_nonnull(err);
	md_error_destroy(err);
	struct md_node *arr = md_node_array();
	err = md_node_set(arr, "k", md_node_u64(1));
	ck_assert_ptr_nonnull(err);
	md_error_destroy(err);
	md_node_destroy(arr);
	md_node_destroy(o);
	md_node_destroy(NULL);
}
END_TEST

START_TEST(test_many_keys)
{
	/* large objects are indexed; order, replacement and lookup must not change */
	struct md_node *o = md_node_object();
	char key[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_ptr_null(md_node_set_u64(o, key, (uint64_t)i));
	}
	for (int i = 0; i < 5000; i += 7) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_ptr_null(md_node_set_u64(o, key, (uint64_t)i * 2));
	}
	ck_assert_uint_eq(md_node_count(o), 5000);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_str_eq(md_node_key_at(o, (size_t)i), key);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(o, key)),
				  (uint64_t)(i % 7 == 0 ? i * 2 : i));
	}
	ck_assert_ptr_null(md_node_get(o, "k5000"));
	/* duplicate keys in a document: the last value wins, the first place is kept */
	struct md_node *d = parse_ok("{\"a\":1,\"b\":2,\"a\":3}");
	ck_assert_uint_eq(md_node_count(d), 2);
	ck_assert_str_eq(md_node_key_at(d, 0), "a");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(d, "a")), 3);
	md_node_destroy(d);
	md_node_destroy(o);
}
END_TEST

START_TEST(test_integers)
{
	assert_canon("18446744073709551615", "18446744073709551615");
	assert_canon("-9223372036854775808", "-9223372036854775808");
	assert_canon("9223372036854775807", "9223372036854775807");
	assert_canon("0", "0");
	assert_canon("-0", "0");

	struct md_node *n = parse_ok("18446744073709551615");
	ck_assert_int_eq(md_node_type(n), MD_NODE_U64);
	ck_assert_uint_eq(md_node_get_u64(n), UINT64_MAX);
	md_node_destroy(n);
	n = parse_ok("-9223372036854775808");
	ck_assert_int_eq(md_node_type(n), MD_NODE_I64);
	ck_assert_int_eq(md_node_get_i64(n), INT64_MIN);
	md_node_destroy(n);
	/* one past the integer ranges: doubles */
	n = parse_ok("18446744073709551616");
	ck_assert_int_eq(md_node_type(n), MD_NODE_DOUBLE);
	ck_assert_double_eq(md_node_get_double(n), 18446744073709551616.0);
	ck_assert_uint_eq(md_node_get_u64(n), UINT64_MAX);
	md_node_destroy(n);
	n = parse_ok("-9223372036854775809");
	ck_assert_int_eq(md_node_type(n), MD_NODE_DOUBLE);
	md_node_destroy(n);

	/* built values print exactly */
	n = md_node_array();
	ck_assert_ptr_null(md_node_append(n, md_node_u64(UINT64_MAX)));
	ck_assert_ptr_null(md_node_append(n, md_node_i64(INT64_MIN)));
	ck_assert_ptr_null(md_node_append(n, md_node_i64(INT64_MAX)));
	char *s = to_json(n, 0);
	ck_assert_str_eq(s, "[18446744073709551615,-9223372036854775808,9223372036854775807]");
	free(s);
	md_node_destroy(n);
}
END_TEST

START_TEST(test_doubles)
{
	assert_canon("1.5", "1.5");
	assert_canon("0.1", "0.1");
	assert_canon("1e3", "1000.0");     /* stays a double */
	assert_canon("-0.0", "-0.0");
	assert_canon("1E-7", "1e-07");
	assert_canon("3.412", "3.412");
	assert_canon("1.7976931348623157e308", "1.7976931348623157e+308");

	/* round trip of awkward values: same bits back */
	const double vals[] = { 0.1 + 0.2, 1.0 / 3, 123456789.125, 5e-324, 4503599627370497.0,
				-2.2250738585072014e-308 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		struct md_node *n = md_node_double(vals[i]);
		char *s = to_json(n, 0);
		struct md_node *back = parse_ok(s);
		ck_assert_int_eq(md_node_type(back), MD_NODE_DOUBLE);
		ck_assert_msg(md_node_get_double(back) == vals[i], "%s", s);
		free(s);
		md_node_destroy(back);
		md_node_destroy(n);
	}
	/* no JSON for NaN and infinity: null */
	struct md_node *n = md_node_array();
	ck_assert_ptr_null(md_node_append(n, md_node_double(NAN)));
	ck_assert_ptr_null(md_node_append(n, md_node_double(INFINITY)));
	char *s = to_json(n, 0);
	ck_assert_str_eq(s, "[null,null]");
	free(s);
	md_node_destroy(n);
}
END_TEST

START_TEST(test_strings)
{
	/* escapes in, canonical escapes out */
	assert_canon("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\"");
	assert_canon("\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\x7f\"");
	assert_canon("\"\\u00e9\\u20ac\"", "\"\xc3\xa9\xe2\x82\xac\"");
	/* surrogate pair: U+1F600 */
	assert_canon("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
	assert_canon("\"\xf0\x9f\x98\x80\"", "\"\xf0\x9f\x98\x80\"");
	/* an embedded NUL survives */
	struct md_node *n = parse_ok("\"a\\u0000b\"");
	char *s = to_json(n, 0);
	ck_assert_str_eq(s, "\"a\\u0000b\"");
	free(s);
	md_node_destroy(n);

	/* bytes that are not UTF-8 (comm, paths from the target) still give valid JSON */
	n = md_node_string("ok\xff\xc3(\xed\xa0\x80\x01\xe2\x82");
	s = to_json(n, 0);
	ck_assert_str_eq(s, "\"ok\\u00ff\\u00c3(\\u00ed\\u00a0\\u0080\\u0001\\u00e2\\u0082\"");
	md_node_destroy(n);
	n = parse_ok(s);
	ck_assert_int_eq(md_node_type(n), MD_NODE_STRING);
	free(s);
	md_node_destroy(n);

	n = md_node_stringf("%s-%d", "x", 42);
	ck_assert_str_eq(md_node_get_string(n), "x-42");
	md_node_destroy(n);
}
END_TEST

START_TEST(test_pretty)
{
	struct md_node *n = parse_ok("{\"a\":[1,{\"b\":null},[]],\"c\":{},\"d\":\"x\"}");
	char *s = to_json(n, 2);
	ck_assert_str_eq(s, "{\n"
			    "  \"a\": [\n"
			    "    1,\n"
			    "    {\n"
			    "      \"b\": null\n"
			    "    },\n"
			    "    []\n"
			    "  ],\n"
			    "  \"c\": {},\n"
			    "  \"d\": \"x\"\n"
			    "}");
	/* and the pretty text parses to the same compact form */
	char *c = canon(s);
	ck_assert_str_eq(c, "{\"a\":[1,{\"b\":null},[]],\"c\":{},\"d\":\"x\"}");
	free(c);
	free(s);
	md_node_destroy(n);
	/* scalars at the top level and surrounding whitespace are fine */
	assert_canon(" \t\r\n true \n", "true");
	assert_canon("\"s\"", "\"s\"");
	assert_canon("null", "null");
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}",
		"{a:1}", "{'a':1}", "[1 2]", "01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "0x10",
		"NaN", "Infinity", "-Infinity", "tru", "nul", "falsey", "\"abc", "\"\\x\"",
		"\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
		"\"\\ud800x\"", "\"a\tb\"", "\"a\nb\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "[1]x", "1 2", "{}{}", "[1e400]", "/*c*/1",
		"[\"a\"]]", "{\"a\":1 \"b\":2}", "\xef\xbb\xbf{}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_bad(bad[i], strlen(bad[i]));
	/* a NUL inside the given length is not whitespace */
	assert_bad("[1]\0", 4);
	assert_bad("\"a\0b\"", 5);

	/* the offset is where the problem is */
	struct md_node *n = NULL;
	struct md_error *err = md_node_parse_json("[1, 2, x]", 9, &n);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err->message, "at byte 7"));
	ck_assert_uint_eq(err->address, 7);
	md_error_destroy(err);
}
END_TEST

START_TEST(test_depth_bound)
{
	char buf[1024];
	/* 200 levels are accepted, 201 are not */
	memset(buf, '[', 200);
	memset(buf + 200, ']', 200);
	struct md_node *n = NULL;
	struct md_error *err = md_node_parse_json(buf, 400, &n);
	ck_assert_msg(err == NULL, "%s", err ? err->message : "");
	md_node_destroy(n);
	memset(buf, '[', 201);
	memset(buf + 201, ']', 201);
	assert_bad(buf, 402);
	/* deep nesting that never closes must not blow the stack either */
	char *deep = malloc(1000000);
	memset(deep, '[', 1000000);
	assert_bad(deep, 1000000);
	for (size_t i = 0; i + 5 <= 1000000; i += 5)
		memcpy(deep + i, "{\"a\":", 5);
	assert_bad(deep, 1000000);
	free(deep);
}
END_TEST

START_TEST(test_path)
{
	struct md_node *n = parse_ok("{\"a\":{\"b\":[{\"c\":1},{\"c\":2,\"d\":[10,20]}]},"
				     "\"memory\":{\"rss_bytes\":4096}}");
	ck_assert_uint_eq(md_node_get_u64(md_node_path(n, "memory.rss_bytes")), 4096);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(n, "a.b.0.c")), 1);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(n, "a.b.1.c")), 2);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(n, "a.b.1.d.1")), 20);
	ck_assert_ptr_eq(md_node_path(n, ""), n);
	ck_assert_ptr_null(md_node_path(n, "a.b.2.c"));
	ck_assert_ptr_null(md_node_path(n, "a.b.x"));
	ck_assert_ptr_null(md_node_path(n, "a.b.-1"));
	ck_assert_ptr_null(md_node_path(n, "a..b"));
	ck_assert_ptr_null(md_node_path(n, "a.b."));
	ck_assert_ptr_null(md_node_path(n, ".a"));
	ck_assert_ptr_null(md_node_path(n, "memory.rss_bytes.x"));
	ck_assert_ptr_null(md_node_path(n, "a.b.99999999999999999999999"));
	ck_assert_ptr_null(md_node_path(NULL, "a"));
	md_node_destroy(n);
}
END_TEST

START_TEST(test_conversions)
{
	struct md_node *n = md_node_double(-3.7);
	ck_assert_uint_eq(md_node_get_u64(n), 0);
	ck_assert_int_eq(md_node_get_i64(n), -3);
	md_node_destroy(n);
	n = md_node_double(1e30);
	ck_assert_uint_eq(md_node_get_u64(n), UINT64_MAX);
	ck_assert_int_eq(md_node_get_i64(n), INT64_MAX);
	md_node_destroy(n);
	n = md_node_u64(UINT64_MAX);
	ck_assert_int_eq(md_node_get_i64(n), INT64_MAX);
	md_node_destroy(n);
	n = md_node_string("0xFFFFFFFFFFFFFFFF");
	ck_assert_uint_eq(md_node_get_u64(n), UINT64_MAX);
	md_node_destroy(n);
	n = md_node_string("12");
	ck_assert_uint_eq(md_node_get_u64(n), 0); /* only "0x" strings are numbers */
	md_node_destroy(n);
	n = md_node_string("0x1g");
	ck_assert_uint_eq(md_node_get_u64(n), 0);
	md_node_destroy(n);
}
END_TEST

START_TEST(test_round_trip_document)
{
	const char *doc =
		"{\"schema_version\":1,\"target\":{\"pid\":42,\"comm\":\"t\\u00e9st\",\"exe\":null,"
		"\"pause_ms\":1.25},\"classes\":{\"live\":18446744073709551615,\"free\":0},"
		"\"list\":[true,false,null,-1,0.5,\"\",[],{}],\"k\\u0000z\":\"v\"}";
	char *once = canon(doc);
	char *twice = canon(once);
	ck_assert_str_eq(once, twice);
	free(twice);
	/* pretty and compact forms describe the same tree */
	struct md_node *n = parse_ok(once);
	char *pretty = to_json(n, 4);
	char *back = canon(pretty);
	ck_assert_str_eq(back, once);
	free(back);
	free(pretty);
	md_node_destroy(n);
	free(once);
}
END_TEST

Suite *node_suite(void)
{
	Suite *s = suite_create("node");
	TCase *tc = tcase_create("node");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_build_and_lookup);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_doubles);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_pretty);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_depth_bound);
	tcase_add_test(tc, test_path);
	tcase_add_test(tc, test_conversions);
	tcase_add_test(tc, test_round_trip_document);
	suite_add_tcase(s, tc);
	return s;
}

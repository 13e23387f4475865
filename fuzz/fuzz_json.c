/* libFuzzer harness for the JSON parser and writer (md_node_parse_json, md_node_write_json).
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *         fuzz/fuzz_json.c src/node.c src/error.c -lm -o build/fuzz_json
 *   ./build/fuzz_json -max_total_time=120 -max_len=65536 CORPUS_DIR tests/data/golden
 * (tests/data/golden/report.json is a good seed.)
 * Beyond "no crash, no leak", it checks what the writer promises: whatever parses is written as
 * JSON that parses again, and writing is then a fixed point (compact and pretty alike). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/node.h"

static char *write_json(const struct md_node *n, int indent, size_t *len_ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		abort();
	struct md_error *err = md_node_write_json(n, f, indent);
	if (err)
		abort();
	fclose(f);
	*len_ret = len;
	return buf;
}

static struct md_node *reparse(const char *text, size_t len)
{
	struct md_node *n = NULL;
	struct md_error *err = md_node_parse_json(text, len, &n);
	if (err) {
		fprintf(stderr, "own output rejected: %s\n%.*s\n", err->message, (int)len, text);
		abort();
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_node *n = NULL;
	struct md_error *err = md_node_parse_json((const char *)data, size, &n);
	if (err) {
		if (err->code != MD_ERR_BAD_DATA && err->code != MD_ERR_NOMEM)
			abort();
		md_error_destroy(err);
		return 0;
	}
	/* path lookups on arbitrary trees must stay in bounds */
	md_node_path(n, "a.0.b");
	md_node_path(n, "0");

	size_t l1, l2, lp, lp2;
	char *t1 = write_json(n, 0, &l1);
	struct md_node *n2 = reparse(t1, l1);
	char *t2 = write_json(n2, 0, &l2);
	if (l1 != l2 || memcmp(t1, t2, l1) != 0) {
		fprintf(stderr, "not a fixed point:\n%.*s\n%.*s\n", (int)l1, t1, (int)l2, t2);
		abort();
	}
	char *p = write_json(n2, 2, &lp);
	struct md_node *n3 = reparse(p, lp);
	char *t3 = write_json(n3, 0, &lp2);
	if (lp2 != l1 || memcmp(t3, t1, l1) != 0)
		abort();
	free(t1);
	free(t2);
	free(t3);
	free(p);
	md_node_destroy(n);
	md_node_destroy(n2);
	md_node_destroy(n3);
	return 0;
}

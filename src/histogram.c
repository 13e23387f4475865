/* Size-class histograms of live and free chunks in the standard shape (include/memdissect/figures.h):
 *   "histogram": [{"size_from", "size_to", "live_count", "live_bytes", "free_count", "free_bytes"}]
 * in an allocator object or in one of its "groups". Entries that are not objects, or lack a
 * size, are skipped: plugin objects are read key by key. */
#include <stdlib.h>

#include "render.h"

static uint64_t get(const struct md_node *o, const char *key, bool *ok)
{
	const struct md_node *v = md_node_get(o, key);
	enum md_node_type ty = md_node_type(v);
	if (!v || (ty != MD_NODE_U64 && ty != MD_NODE_I64)) {
		if (ok)
			*ok = false;
		return 0;
	}
	return md_node_get_u64(v);
}

struct md_error *md_histogram_rows(const struct md_node *obj, struct md_hist_row **rows_ret, size_t *n_ret)
{
	*rows_ret = NULL;
	*n_ret = 0;
	const struct md_node *hist = md_node_get(obj, "histogram");
	if (md_node_type(hist) != MD_NODE_ARRAY || !md_node_count(hist))
		return NULL;
	size_t n = md_node_count(hist);
	struct md_hist_row *rows = calloc(n, sizeof(*rows));
	if (!rows)
		return &md_error_nomem;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct md_node *e = md_node_at(hist, i);
		if (md_node_type(e) != MD_NODE_OBJECT)
			continue;
		struct md_hist_row *row = &rows[k];
		bool ok = true;
		row->size_from = get(e, "size_from", &ok);
		row->size_to = get(e, "size_to", &ok);
		if (!ok || row->size_to < row->size_from)
			continue;
		row->live_count = get(e, "live_count", NULL);
		row->live_bytes = get(e, "live_bytes", NULL);
		row->free_count = get(e, "free_count", NULL);
		row->free_bytes = get(e, "free_bytes", NULL);
		k++;
	}
	if (!k) {
		free(rows);
		return NULL;
	}
	*rows_ret = rows;
	*n_ret = k;
	return NULL;
}

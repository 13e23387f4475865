/* The JSON report of docs/json.md: the report as a node tree, pretty-printed. */
#include <errno.h>
#include <stdio.h>

#include "memdissect/report.h"

struct md_error *md_render_json(const struct md_report *r, FILE *out)
{
	struct md_node *doc = NULL;
	struct md_error *err = md_report_to_node(r, &doc);
	if (err)
		return err;
	err = md_node_write_json(doc, out, 2);
	md_node_destroy(doc);
	if (err)
		return err;
	fputc('\n', out);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the JSON report");
	return NULL;
}

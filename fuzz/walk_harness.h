/* The part of the allocator-walker harnesses (fuzz_glibc_walk.c, fuzz_jemalloc_walk.c) that does
 * not depend on the allocator: loading the seed image, applying and undoing a mutation script,
 * driving the plugin and the classifier. The including file defines HARNESS and DEFAULT_SEED
 * and provides find_anchors(), which fills anchors[] from the plugin's state. */
#ifndef MD_FUZZ_WALK_HARNESS_H
#define MD_FUZZ_WALK_HARNESS_H

static void find_anchors(void);

const struct md_plugin *md_plugin_entry(void);

static void find_anchors(void);

/* ---- the driver shared by both walker harnesses ---- */
static struct md_target *image;
static const struct md_plugin *plugin;
static void *plugin_state;
static uint64_t anchors[16];
static size_t n_anchors;

static void die_setup(const char *what, struct md_error *err)
{
	fprintf(stderr, "%s: %s: %s\n", HARNESS, what, err ? err->message : "failed");
	exit(2);
}

/* The seed: a snapshot of a real test process, opened with symbols so that the plugin's open()
 * finds the allocator exactly as it would in the live process, then mirrored into an image. */
static void setup(void)
{
	const char *seed = getenv("MD_FUZZ_SEED");
	if (!seed)
		seed = DEFAULT_SEED;
	struct md_core_options copts = { 0 };
	struct md_target *core = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(seed, &copts, &core, &info);
	if (err)
		die_setup(seed, err);
	md_core_info_deinit(&info);
	err = md_image_from_target(core, 512ULL << 20, &image);
	if (err)
		die_setup("image", err);
	plugin = md_plugin_entry();
	struct md_plugin_options popts = { 0 };
	err = plugin->open(image, &popts, &plugin_state);
	if (err || !plugin_state)
		die_setup("plugin open", err);
	find_anchors();
	if (!n_anchors)
		die_setup("no anchors", NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Setup and one unmutated run here, outside any input: what libdwfl/libelf cache lazily is then
 * not mistaken for a leak of the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	setup();
	LLVMFuzzerTestOneInput(NULL, 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_image_undo *undo = NULL;
	struct md_error *err = md_image_mutate(image, anchors, n_anchors, data, size, &undo);
	if (err)
		abort();
	struct md_classifier *c = NULL;
	err = md_classifier_create(image, &c);
	if (err)
		abort();
	struct md_sink *sink = md_classifier_sink(c, plugin->name);
	if (!sink)
		abort();
	/* A walk error is allowed ("nothing can be trusted"), a crash, hang or leak is not; the
	 * rest of the pipeline (classifier, report) must take whatever the walk emitted. */
	err = plugin->walk(plugin_state, image, sink, false);
	if (err && (!err->message || strchr(err->message, '\n')))
		abort();
	md_error_destroy(err);
	if (plugin->abi_version >= 3 && plugin->finish) {
		err = plugin->finish(plugin_state, image, sink);
		if (err && (!err->message || strchr(err->message, '\n')))
			abort();
		md_error_destroy(err);
	}
	struct md_report r;
	md_report_init(&r);
	err = md_classifier_finish(c, &r);
	if (err)
		abort();
	struct md_node *obj = md_node_object();
	if (obj && !md_node_set_string(obj, "name", plugin->name))
		md_error_destroy(plugin->report(plugin_state, sink, obj));
	md_node_destroy(obj);
	md_report_deinit(&r);
	md_classifier_destroy(c);
	md_image_undo(image, undo);
	return 0;
}


#endif

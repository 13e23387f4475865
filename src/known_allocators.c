/* The allocators and runtimes the core recognises when no plugin walks them, by their modules
 * and symbols. This is the one place in src/ that names allocators: a report has to say
 * "gperftools tcmalloc is present but no plugin walks it", and with no plugin there is no one
 * else to say what is there. Names only, no keys of any allocator's object (tests/check_docs.c
 * allows this file and nothing else of src/ to name them). */
#include <string.h>

#include "unanalysed.h"

static const struct md_known_allocator known[] = {
	{ "tcmalloc", "gperftools tcmalloc", "tcmalloc: MallocExtension::GetStats() or TCMALLOC_* heap profiling", true,
	  { "libtcmalloc" }, { "tc_malloc", "MallocExtension_GetStats" } },
	{ "mimalloc", "mimalloc", "mimalloc: MIMALLOC_SHOW_STATS=1 or mi_stats_print()", true, { "libmimalloc" },
	  { "mi_malloc", "mi_heap_malloc" } },
	{ "musl", "musl's malloc", "musl: no statistics interface; mallinfo is not provided", false,
	  { "ld-musl-", "libc.musl-" }, { "__libc_malloc_impl", "__malloc_donate", "__simple_malloc" } },
	{ "pymalloc", "CPython's obmalloc (pymalloc arenas)", "Python: sys._debugmallocstats() and tracemalloc", false,
	  { "libpython" }, { "PyObject_Malloc", "_PyObject_Malloc" } },
	{ "go", "the Go runtime's heap", "Go: runtime.ReadMemStats or GODEBUG=gctrace=1", false, { NULL },
	  { "runtime.mallocgc", "runtime.buildVersion" } },
	{ "hotspot", "the HotSpot JVM (Java heap, metaspace, code cache)",
	  "Java: jcmd PID GC.heap_info and -XX:NativeMemoryTracking=summary", false, { "libjvm.so" }, { "JNI_CreateJavaVM" } },
	{ "v8", "V8 (node's JavaScript heap)", "node: process.memoryUsage() and a heap snapshot (--inspect)", false,
	  { "libnode.so", "libv8.so" }, { "node_module_register", "_ZN2v86Isolate3NewERKNS0_12CreateParamsE" } },
};

/* The dynamic loaders: a program that maps one is dynamically linked. */
static const char *const loaders[] = { "ld-linux", "ld-musl", NULL };

const struct md_known_allocator *md_known_allocators(size_t *n_ret)
{
	*n_ret = sizeof(known) / sizeof(known[0]);
	return known;
}

const struct md_known_allocator *md_known_allocator(const char *name)
{
	for (size_t i = 0; name && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].name, name) == 0)
			return &known[i];
	return NULL;
}

const char *md_known_allocator_tool(const char *name)
{
	const struct md_known_allocator *k = md_known_allocator(name);
	return k ? k->tool : NULL;
}

const char *const *md_known_loaders(void)
{
	return loaders;
}

/* Mappings whose owner the evidence makes clear. Go (linux/amd64) reserves its heap arenas from
 * the first hint 0x00c0<<32 upwards (the next hints, 1<<40 | 0x00c0<<32 and on, only when that
 * fails; the last ones would overlap the shared-library area), so a private anonymous mapping in
 * [0x00c0<<32, 0x0100<<32) of a Go program is its heap; goroutine stacks live there too.
 * Nothing else is claimed: pymalloc's 1 MiB arenas, the Java heap and V8's pages merge with
 * their anonymous neighbours and cannot be told apart from the mappings alone. */
void md_known_attribute_regions(struct md_report *r)
{
	bool go = false;
	for (size_t i = 0; i < r->n_unanalysed; i++)
		go |= strcmp(r->unanalysed[i].name, "go") == 0;
	for (size_t i = 0; go && i < r->n_regions; i++) {
		struct md_report_region *reg = &r->regions[i];
		if (!reg->path && reg->kind == MD_MAP_ANON && !reg->allocator && reg->start >= (0x00c0ULL << 32) &&
		    reg->end <= (0x0100ULL << 32) && reg->perms[0] == 'r' && reg->perms[1] == 'w' && reg->perms[3] == 'p')
			reg->owner = "go heap arena";
	}
}

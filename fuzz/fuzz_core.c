/* libFuzzer harness for the core parser (attach/core.c): ELF header, program headers, notes
 * (CORE, GDB and MEMDISSECT), NT_FILE, NT_PRSTATUS, the snapshot's run-length page bits, the
 * mappings built from them, and reads through the target API. scripts/fuzz.sh builds it:
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude -Iattach fuzz/fuzz_core.c attach/core.c
 *         attach/target.c attach/procfs.c attach/symbols.c src/error.c -ldw -lelf
 * libdwfl is left out of the loop (md_core_options.no_symbols): it is elfutils' parser, not ours.
 *
 * Built with -DFUZZ_CORE_SEED_MAIN instead, this file is the seed maker: it turns a real core
 * (kernel, gdb or snapshot) into a small one that keeps every header and note and a few pages
 * of data, so that the fuzzer starts past the "truncated" checks. */
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "memdissect/target.h"
#include "target_impl.h"

#ifndef FUZZ_CORE_SEED_MAIN

/* What the parser accepted must hold together: mappings sorted, page aligned, bits in range. */
static void check_target(struct md_target *t)
{
	size_t n;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	for (size_t i = 0; i < n; i++) {
		if (maps[i].start >= maps[i].end || (maps[i].start | maps[i].end) % MD_PAGE_SIZE)
			abort();
		if (i && maps[i - 1].end > maps[i].start)
			abort();
		if (md_target_find_mapping(t, maps[i].start) != &maps[i])
			abort();
	}
	/* Reads of the first pages of a few mappings: every path of read_present (core data,
	 * holes, files on disk, faults) without reading gigabytes of a sparse image. */
	uint8_t buf[2 * MD_PAGE_SIZE];
	for (size_t i = 0; i < n && i < 64; i++) {
		struct md_error *err = md_target_read(t, maps[i].start, buf, sizeof(buf) <= maps[i].end - maps[i].start
										      ? sizeof(buf)
										      : MD_PAGE_SIZE);
		md_error_destroy(err);
		(void)md_target_page_bits(t, maps[i].start);
	}
	size_t nt;
	const struct md_thread *th = md_target_threads(t, &nt);
	for (size_t i = 0; i < nt && i < 16; i++) {
		uint64_t v;
		if (th[i].regs_valid)
			md_error_destroy(md_target_read_u64(t, th[i].regs[MD_REG_RSP], &v));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct md_core_options opts = { .no_symbols = true, .sysroot = "/nonexistent-sysroot" };
	struct md_target *t = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open_buffer(data, size, &opts, &t, &info);
	if (err) {
		/* Bad input is refused as bad input, never as something else. */
		if (err->code != MD_ERR_BAD_FILE && err->code != MD_ERR_NOMEM)
			abort();
		if (!err->message || strchr(err->message, '\n'))
			abort();
		md_error_destroy(err);
		return 0;
	}
	check_target(t);
	md_target_destroy(t);
	md_core_info_deinit(&info);
	return 0;
}

#else /* the seed maker */

#define KEEP_BYTES (64 * 1024) /* data kept per core */

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s CORE SEED\n", argv[0]);
		return 2;
	}
	FILE *in = fopen(argv[1], "rb");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof(eh), 1, in) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phnum == 0 ||
	    eh.e_phnum == PN_XNUM) {
		fprintf(stderr, "%s: not a core this tool can shrink\n", argv[1]);
		return 1;
	}
	Elf64_Phdr *ph = calloc(eh.e_phnum, sizeof(*ph));
	if (!ph || fseek(in, (long)eh.e_phoff, SEEK_SET) != 0 || fread(ph, sizeof(*ph), eh.e_phnum, in) != eh.e_phnum) {
		fprintf(stderr, "%s: cannot read the program headers\n", argv[1]);
		return 1;
	}
	/* New layout: header, program headers, notes, then the few data pages kept. */
	uint64_t off = sizeof(eh) + (uint64_t)eh.e_phnum * sizeof(*ph), kept = 0;
	uint8_t **blobs = calloc(eh.e_phnum, sizeof(*blobs));
	uint64_t *old_off = calloc(eh.e_phnum, sizeof(*old_off));
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			bool note = ph[i].p_type == PT_NOTE;
			if ((pass == 0) != note)
				continue;
			uint64_t len = ph[i].p_filesz;
			if (!note) {
				if (ph[i].p_type != PT_LOAD)
					continue;
				if (kept + len > KEEP_BYTES || !(ph[i].p_flags & PF_W))
					len = 0;
				ph[i].p_filesz = len;
			}
			old_off[i] = ph[i].p_offset;
			ph[i].p_offset = off;
			if (len) {
				blobs[i] = malloc(len);
				if (!blobs[i] || fseek(in, (long)old_off[i], SEEK_SET) != 0 || fread(blobs[i], 1, len, in) != len) {
					fprintf(stderr, "%s: cannot read segment %u\n", argv[1], i);
					return 1;
				}
			}
			off += len;
			if (!note)
				kept += len;
		}
	}
	eh.e_phoff = sizeof(eh);
	eh.e_shoff = 0;
	eh.e_shnum = 0;
	eh.e_shstrndx = 0;
	FILE *out = fopen(argv[2], "wb");
	if (!out) {
		perror(argv[2]);
		return 1;
	}
	fwrite(&eh, sizeof(eh), 1, out);
	fwrite(ph, sizeof(*ph), eh.e_phnum, out);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < eh.e_phnum; i++)
			if (blobs[i] && (pass == 0) == (ph[i].p_type == PT_NOTE))
				fwrite(blobs[i], 1, ph[i].p_filesz, out);
	if (fclose(out) != 0) {
		perror(argv[2]);
		return 1;
	}
	fclose(in);
	return 0;
}

#endif

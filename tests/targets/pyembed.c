/* An embedder of Debian's libpython3.11.so.1.0 (stripped, PIC): the interpreter lives in the
 * shared library, not in the executable. Runs like python3: pyembed SCRIPT ARGS... */
#include <Python.h>

int main(int argc, char **argv)
{
	return Py_BytesMain(argc, argv);
}

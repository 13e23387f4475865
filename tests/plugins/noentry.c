/* A shared object without md_plugin_entry: not a plugin. */
int md_not_a_plugin(void);
int md_not_a_plugin(void)
{
	return 42;
}

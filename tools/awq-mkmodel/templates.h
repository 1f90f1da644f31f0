/* templates.h - built-in chat templates of awq-mkmodel (llama2, mistral, chatml, zephyr). */
#ifndef MK_TEMPLATES_H
#define MK_TEMPLATES_H

/* The Jinja text of a named template, or NULL when the name is not built in. */
const char *mk_template(const char *name);

#endif

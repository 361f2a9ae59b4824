/* view.c — the read model (see view.h). Written by the view helper. */
#include "view.h"

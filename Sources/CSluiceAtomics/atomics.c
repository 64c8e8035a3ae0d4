#include "CSluiceAtomics.h"

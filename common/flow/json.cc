// The one translation unit that compiles Boost.JSON's implementation (see json.h). A second
// inclusion of src.hpp anywhere in a program would define every Boost.JSON symbol twice.
#include <boost/json/src.hpp>

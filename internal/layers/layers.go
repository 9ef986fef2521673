// Package layers holds no code: its test keeps the module's import graph layered.
package layers

// EGE-UNet lesion demo: the app, and the pure-Java core it shares with the tests run on a desktop JDK.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // LiteRT: com.google.ai.edge.litert
        mavenCentral()
    }
}
rootProject.name = "egeunet-lesion-demo"
include(":app", ":lesioncore")
